"""The end-to-end suite on each cloud warehouse this machine can stand up (make test-warehouses)."""
