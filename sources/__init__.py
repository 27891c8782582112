"""dlt sources of this project: the ApprovalMax source and the reusable OAuth token layer."""
