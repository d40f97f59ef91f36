"""Content and IP-persona service: personas, their content, and sales funnels fed by order events."""
