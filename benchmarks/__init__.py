"""`make bench`: this pipeline against the download floor and dlt's rest_api source, in one run."""
