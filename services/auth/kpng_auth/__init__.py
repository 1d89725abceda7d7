"""kpng-auth: who may use the bus (NATS server configuration, credentials, certificates)."""
