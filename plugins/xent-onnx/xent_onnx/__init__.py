"""ONNX's loss operators as two xent-conformance frameworks: `onnxruntime` (ONNX Runtime's CPU
provider) and `onnx-reference` (onnx.reference.ReferenceEvaluator, the spec's own numpy
evaluation). Listing them imports neither: the registry loads these entries, and a worker
imports the adapter module when it runs the framework."""
from conformance.adapters import AdapterEntry

ONNXRUNTIME = AdapterEntry("onnxruntime", "xent_onnx.onnxruntime_adapter", ("onnxruntime", "onnx"),
                           default_mode="session")
REFERENCE = AdapterEntry("onnx-reference", "xent_onnx.reference_adapter", ("onnx",), default_mode="evaluate")
