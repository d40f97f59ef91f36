"""Events: the envelope, the in-document outbox, its relay, and durable consumers.

A change and the events it causes are written in one single-document update: the
aggregate keeps its unsent events in an `outbox` map keyed by event id. The relay
publishes them with `Nats-Msg-Id = event id` and removes them once JetStream has
stored them. Consumers ack only after their effect is stored, and make that effect
idempotent by event id.
"""
