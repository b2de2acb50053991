"""The openai judge against the real local chat-completions server (tests/llm_server.py):
its prompt, its parsed verdicts, and malformed answers turned into abstentions, never crashes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llm_server import ChatServer, Scripted
from sqlmodel import select
from typer.testing import CliRunner

from memp_core.cli import app
from memp_core.config import Settings
from memp_core.errors import ConfigError, LLMError
from memp_core.judge import JudgeInput, get_judge
from memp_core.judge.llm import OpenAIJudge
from memp_core.llm import StepView
from memp_core.models import Judgement, Step, Trajectory
from memp_core.store import Store
from memp_core.vocab import Verdict

RUN = JudgeInput(
    task="put some spraybottle on toilet.",
    steps=[
        StepView("take spraybottle 2 from cabinet 2", "You pick up the spraybottle 2 from the "
                 "cabinet 2.", "I found it."),
        StepView("put spraybottle 2 in/on toilet 1",
                 "You put the spraybottle 2 in/on the toilet 1."),
    ],
    environment="alfworld",
    initial_observation="You are in the middle of a room. You see a toilet 1.",
    trajectory_id=9,
)  # fmt: skip
GOOD = (
    "<verdict>success</verdict>\n<confidence>0.9</confidence>\n"
    "<rationale>Step 1 put the spraybottle on the toilet.</rationale>"
)


@pytest.fixture(name="server")
def server_fixture() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


def make(server: ChatServer) -> OpenAIJudge:
    settings = Settings(openai_base_url=server.base_url, openai_api_key="k", llm_model="judge-m",
                        llm_timeout_s=5.0, llm_max_retries=0)  # fmt: skip
    judge = get_judge("openai", settings)
    assert isinstance(judge, OpenAIJudge)
    return judge


def test_a_tagged_answer_becomes_a_verdict_with_confidence_and_rationale(
    server: ChatServer,
) -> None:
    server.push(Scripted(text=GOOD))
    v = make(server).judge(RUN)
    assert (v.verdict, v.confidence) == (Verdict.success, 0.9)
    assert v.rationale == "Step 1 put the spraybottle on the toilet."
    sent = server.received[0]
    user = sent.messages[1]["content"]
    assert "Task: put some spraybottle on toilet." in user and "> take spraybottle 2" in user
    assert "You are in the middle of a room" in user and "Outcome" not in user
    assert sent.body["stop"] == ["</rationale>"] and sent.body["model"] == "judge-m"


def test_the_closing_tag_removed_by_the_stop_sequence_is_restored(server: ChatServer) -> None:
    server.push(Scripted(text=GOOD.removesuffix("</rationale>") + "</rationale> and more"))
    assert make(server).judge(RUN).verdict == Verdict.success


@pytest.mark.parametrize(
    "answer",
    [
        '{"verdict": "Failure.", "confidence": "80%", "rationale": "It never reached the toilet."}',
        "<verdict>failure</verdict><confidence>0.8</confidence><rationale>It never reached "
        "the toilet.</rationale>",
    ],
)
def test_json_or_tags_percent_or_fraction_are_read(server: ChatServer, answer: str) -> None:
    server.push(Scripted(text=answer))
    v = make(server).judge(RUN)
    assert (v.verdict, v.confidence) == (Verdict.failure, 0.8)


def test_a_malformed_answer_gets_one_repair_request_stating_the_problem(
    server: ChatServer,
) -> None:
    server.push(Scripted(text="I think it worked, probably."), Scripted(text=GOOD))
    v = make(server).judge(RUN)
    assert v.verdict == Verdict.success and len(server.received) == 2
    repair = server.received[1].messages[-1]["content"]
    assert "could not be used" in repair and "verdict" in repair


@pytest.mark.parametrize(
    "bad",
    [
        "Looks fine to me.",
        "<verdict>maybe</verdict><confidence>0.5</confidence><rationale>x</rationale>",
        "<verdict>success</verdict><confidence>7</confidence><rationale>x</rationale>",
        "<verdict>success</verdict><confidence>high</confidence><rationale>x</rationale>",
        "<verdict>success</verdict><confidence>0.9</confidence><rationale> </rationale>",
    ],
)
def test_an_answer_still_malformed_after_the_repair_is_an_abstention_with_the_reason(
    server: ChatServer, bad: str
) -> None:
    server.push(Scripted(text=bad), Scripted(text=bad))
    v = make(server).judge(RUN)
    assert v.verdict == Verdict.unknown and v.confidence == 0.0
    assert v.rationale.startswith("the model's answer could not be used")
    assert "trajectory 9" in v.rationale and len(server.received) == 2


def test_an_empty_answer_is_an_abstention(server: ChatServer) -> None:
    server.push(Scripted(text=""))
    v = make(server).judge(RUN)
    assert v.verdict == Verdict.unknown and "empty answer" in v.rationale


def test_an_unreachable_server_is_an_error_not_a_verdict(server: ChatServer) -> None:
    server.push(Scripted(status=400, text="model not loaded"))
    with pytest.raises(LLMError, match="HTTP 400"):
        make(server).judge(RUN)


def test_the_openai_judge_needs_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        get_judge("openai", Settings(openai_base_url=None, openai_api_key=None))


def test_memp_judge_with_openai_stores_the_models_verdicts_and_abstentions(
    server: ChatServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.transaction() as s:
        for n in range(2):
            traj = Trajectory(task=RUN.task, environment="alfworld", success=None,
                              source="import:chat")  # fmt: skip
            store.add_trajectory(s, traj, [Step(trajectory_id=0, index=0, action="look",
                                                observation=f"You see a toilet {n}.")])  # fmt: skip
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("MEMP_LLM_MODEL", "judge-m")
    server.push(Scripted(text=GOOD), Scripted(text="no idea"), Scripted(text="still no idea"))
    result = CliRunner().invoke(app, ["judge", "--backend", "openai", "--json"])
    assert result.exit_code == 0, result.output
    with store.session() as s:
        rows = s.exec(select(Judgement).order_by(Judgement.id)).all()
    assert [(r.verdict, r.backend, r.model) for r in rows] == [
        ("success", "openai", "judge-m"), ("unknown", "openai", "judge-m"),
    ]  # fmt: skip
    assert "could not be used" in rows[1].rationale
