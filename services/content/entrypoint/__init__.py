"""gRPC servicer, order-event handlers and the process wiring."""
