"""Training the PE model: ``python -m tools.ml.train`` from the repository root (needs the
``dev`` extra: LightGBM, onnx, onnxmltools, scikit-learn). The runtime side - features,
manifest, ONNX inference - stays in :mod:`aegis_engine.ml`."""
