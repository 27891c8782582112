"""`python -m approvalmax_pipeline.pipelines.cli`, as the tests and the bench start the command."""

from approvalmax_pipeline.pipelines.cli import main

main()
