"""The webhook listener: the HTTP receiver, its durable queue and the loader that feeds the load step."""
