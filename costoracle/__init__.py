"""Generated gRPC contract of the NAS cost oracle (package costoracle.v1); see proto/."""
