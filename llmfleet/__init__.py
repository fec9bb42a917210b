"""llmfleet: the operator CLI, the request client and the demo."""
