"""Catalog gRPC servicer, event handlers, the sweeper job and process wiring."""
