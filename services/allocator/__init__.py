"""The allocator: GPU inventory, placement, deployment planning and provisioning."""
