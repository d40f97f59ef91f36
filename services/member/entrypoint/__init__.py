"""gRPC servicer, event handlers and process wiring of the member service."""
