"""Local machine-learning detection of Windows PE files (header features, ONNX model).

Nothing here imports onnxruntime at import time: the detector loads it on the first PE file.
Training code (``python -m tools.ml.train``) needs the ``dev`` extra (LightGBM, onnx,
onnxmltools, scikit-learn); the engine itself needs only pefile, numpy and onnxruntime.
"""
