"""What every Siyu process needs, written once: config, logging, ids, money, errors,
request context, the gRPC server bootstrap, storage, events and the dev stack."""
