import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError


def test_the_bitext_bench_stops_on_a_signal_not_on_a_failure():
    """Dagster turns SIGTERM/SIGINT into a step failure and returns; the bench's loop over products must stop
    there (it went on to the next product), but go on after an ordinary failure."""
    from bench.bitext_quality import interrupted

    @dg.asset
    def stopped_by_a_signal():
        raise DagsterExecutionInterruptedError()

    @dg.asset
    def failing():
        raise ValueError("an ordinary failure")

    assert interrupted(dg.materialize([stopped_by_a_signal], raise_on_error=False))
    assert not interrupted(dg.materialize([failing], raise_on_error=False))
