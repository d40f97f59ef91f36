"""The gRPC servicer, the expiry job and the process wiring."""
