"""The record verdict when a test cell records one name several times (in a loop).

A test cell that records, say, the loss of each of the first five training steps
under one name is compared with the solution's records of that name one by one,
in the order they were recorded.
"""
from classroom_grading import RECORD_MIME, records


def rec(name, values, tol=1e-6, dtype="float"):
    return {"name": name, "tol": tol, "dtype": dtype, "shape": [len(values)], "values": values}


def outputs(*recs):
    return [{"output_type": "display_data", "metadata": {},
             "data": {RECORD_MIME: r, "text/plain": f"recorded {r['name']!r}"}} for r in recs]


def reference(*recs):
    """What VerifyRecords builds from the solution's records of one cell."""
    found = records.from_outputs(outputs(*recs))
    return {name: [records.parse(r) for r in recs] for name, recs in found.items()}


LOSSES = [2.0, 1.5, 1.1, 0.8, 0.6]


def loop(values, name="loss at step"):
    return [rec(name, [v]) for v in values]


def test_a_correct_loop_of_records_passes():
    """Does a submission that records the same five losses as the solution, in order, pass?"""
    assert records.verdict(reference(*loop(LOSSES)), records.from_outputs(outputs(*loop(LOSSES)))) == []


def test_each_record_of_a_loop_is_compared_with_its_own_reference_not_the_last():
    """Is step k compared with the solution's step k (a correct trace used to fail against the last)?"""
    submitted = records.from_outputs(outputs(*loop(LOSSES)))
    assert records.verdict(reference(*loop(LOSSES)), submitted) == []
    # Each recorded loss equal to the solution's last one matches the last but no other step.
    constant = records.from_outputs(outputs(*loop([LOSSES[-1]] * len(LOSSES))))
    problems = records.verdict(reference(*loop(LOSSES)), constant)
    assert problems == ["loss at step: the recorded value is not the expected one at record 1 of 5"]


def test_a_wrong_step_in_the_middle_fails_and_is_named():
    """Does one wrong record among correct ones fail the cell, naming its position?"""
    wrong = list(LOSSES)
    wrong[2] = 9.0
    problems = records.verdict(reference(*loop(LOSSES)), records.from_outputs(outputs(*loop(wrong))))
    assert problems == ["loss at step: the recorded value is not the expected one at record 3 of 5"]


def test_the_order_of_records_matters():
    """Does the same set of values in another order fail?"""
    shuffled = records.from_outputs(outputs(*loop(list(reversed(LOSSES)))))
    assert records.verdict(reference(*loop(LOSSES)), shuffled)


def test_too_few_or_too_many_records_of_a_name_fail():
    """Do a loop stopped early and a forged extra record both fail, saying how many were expected?"""
    early = records.from_outputs(outputs(*loop(LOSSES[:3])))
    extra = records.from_outputs(outputs(*loop(LOSSES + [0.5])))
    for submitted, count in ((early, 3), (extra, 6)):
        problems = records.verdict(reference(*loop(LOSSES)), submitted)
        assert problems == [f"loss at step: recorded {count} time(s), where the solution records it 5 time(s)"]


def test_records_of_other_names_between_loop_steps_do_not_disturb_the_order():
    """Is the order kept per name when a loop records two names in turn?"""
    interleaved = [r for step, loss in enumerate(LOSSES)
                   for r in (rec("loss at step", [loss]), rec("step", [step], dtype="int", tol=0.0))]
    assert records.verdict(reference(*interleaved), records.from_outputs(outputs(*interleaved))) == []
    swapped_steps = [r for step, loss in enumerate(LOSSES)
                     for r in (rec("loss at step", [loss]), rec("step", [4 - step], dtype="int", tol=0.0))]
    problems = records.verdict(reference(*interleaved), records.from_outputs(outputs(*swapped_steps)))
    assert problems == ["step: the recorded value is not the expected one at record 1 of 5"]


def test_each_record_uses_its_own_references_tolerance():
    """Is each step compared within the tolerance the solution gave that step?"""
    wanted = [rec("loss at step", [1.0], tol=1e-6), rec("loss at step", [1.0], tol=0.1)]
    close_to_second = [rec("loss at step", [1.0]), rec("loss at step", [1.05])]
    assert records.verdict(reference(*wanted), records.from_outputs(outputs(*close_to_second))) == []
    close_to_first = [rec("loss at step", [1.05]), rec("loss at step", [1.0])]
    assert records.verdict(reference(*wanted), records.from_outputs(outputs(*close_to_first)))


def test_a_single_record_keeps_its_short_message():
    """Does a name recorded once still fail with the plain message?"""
    problems = records.verdict(reference(rec("y", [1.0])), records.from_outputs(outputs(rec("y", [2.0]))))
    assert problems == ["y: the recorded value is not the expected one"]
