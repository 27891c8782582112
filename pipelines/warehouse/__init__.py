"""Where runs write: the dlt pipeline factory, the working folder, the dataset lock, the load step, views,
deletions, run history and state."""
