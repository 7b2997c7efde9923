"""scripts/convergence_replay.py: the stop rule replayed over logged evaluation rounds."""

from __future__ import annotations

from script_utils import load_script


def test_replay_reads_the_logged_rounds_and_stops_where_the_rule_would(tmp_path, capsys):
    module = load_script("convergence_replay")
    scores = [10.0, 20.0, 30.0, 40.0, 50.0] + [50.0 + 0.1 * i for i in range(1, 11)]
    rounds = "\r".join(f"{i + 1:>7}{9.5:>9.2f}{60.0:>9.2f}{40.0:>9.2f}{s:>9.2f}   {max(scores[:i + 1]):.2f} "
                       f"(epoch {i + 1})" for i, s in enumerate(scores))
    (tmp_path / "work").mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "work" / "full__seed0.log").write_text("training ...\r  0%|  | 0/10\r" + rounds + "\nsaved\n")
    (tmp_path / "runs" / "full__seed0.json").write_text("{}")
    (tmp_path / "work" / "full__seed1.log").write_text(rounds)  # no record: still running, not read
    assert module.logged_scores(tmp_path / "work" / "full__seed0.log") == scores
    assert module.replay(scores, 0.2, 5, 0.5) == 7 and module.replay(scores, 0.2, 5, 0.0) is None
    assert module.main([str(tmp_path), "--min-improvement", "0.5", "--min-evaluations", "5"]) == 0
    out = capsys.readouterr().out
    assert "full__seed1" not in out
    assert out.splitlines()[2].split() == ["full__seed0", "15", "7", "51.00", "50.20", "0.50"]
    assert module.main([str(tmp_path / "nothing")]) == 2
