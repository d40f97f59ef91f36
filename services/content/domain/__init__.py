"""Pure rules of personas, content and funnels: no grpc, mongo or nats."""
