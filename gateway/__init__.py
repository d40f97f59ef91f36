"""The HTTP/JSON edge of Siyu: routes transcoded from the protos' google.api.http
annotations to the services' gRPC APIs. No business rules live here."""
