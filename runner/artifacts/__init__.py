"""What a run leaves on disk: atomic writes, verified stage markers and the manifest (`store`), the
run lock (`lock`) and the activation payloads the analysis reads (`activations`)."""
