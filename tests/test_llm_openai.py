"""The openai backend against a real local chat-completions server (tests/llm_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llm_server import ChatServer, Scripted

from memp_core.config import Settings
from memp_core.errors import ConfigError, LLMError, LLMOutputError
from memp_core.llm import CallReport, RunView, StepView, get_backend
from memp_core.llm_answers import ReflectAnswer, ScriptAnswer, parse_answer
from memp_core.llm_openai import OpenAIBackend

GOOD_SCRIPT = """<script>
1. Find the <object>: check countertop, cabinet, fridge
2. Take the <object>.
3. Go to the microwave and heat the <object>.
4. Put the <object> in the <receptacle>.
</script>
<rationale>Both runs found the object, heated it in the microwave, then placed it.</rationale>"""

GOOD_REFLECTION = """<analysis>The agent never opened the closed cabinet (step 2).</analysis>
<failing_step>2</failing_step>
<script>
1. Find the <object>: open closed cabinets first
2. Take the <object>.
</script>"""

FAILED = RunView(
    task="put a clean cloth in drawer",
    task_type="clean",
    success=False,
    steps=[
        StepView(action="go to cabinet 1", observation="The cabinet 1 is closed."),
        StepView(action="take cloth 1 from cabinet 1", observation="Nothing happens."),
        StepView(action="take cloth 1 from cabinet 1", observation="Nothing happens."),
    ],
)
FAILED_7 = RunView(FAILED.task, FAILED.task_type, False, FAILED.steps, trajectory_id=7)


@pytest.fixture(name="server")
def server_fixture() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


def _backend(server: ChatServer, **overrides: object) -> OpenAIBackend:
    values: dict[str, object] = {
        "openai_base_url": server.base_url,
        "openai_api_key": "test-key",
        "llm_model": "test-model",
        "llm_timeout_s": 5.0,
        "llm_max_retries": 2,
    }
    values.update(overrides)
    return OpenAIBackend(Settings(**values))


def test_write_script_parses_tagged_sections_and_counts_tokens(server: ChatServer) -> None:
    server.push(Scripted(text=GOOD_SCRIPT, prompt_tokens=100, completion_tokens=40))
    draft = _backend(server).write_script("heat", [FAILED])
    assert draft.script.splitlines()[0] == "1. Find the <object>: check countertop, cabinet, fridge"
    assert len(draft.script.splitlines()) == 4
    assert draft.rationale.startswith("Both runs") and draft.tokens == 140
    sent = server.received[0]
    assert sent.body["model"] == "test-model" and sent.headers["authorization"] == "Bearer test-key"
    assert "Task type: heat" in sent.messages[1]["content"]


def test_backend_is_found_by_name_and_labels_its_author(server: ChatServer) -> None:
    settings = Settings(openai_base_url=server.base_url, llm_model="qwen2.5-14b")
    backend = get_backend("openai", settings)
    assert isinstance(backend, OpenAIBackend) and backend.author == "llm:qwen2.5-14b"


def test_malformed_answer_is_retried_with_the_problem_stated(server: ChatServer) -> None:
    server.push(
        Scripted(text="Sure! Here is a plan: find it, heat it."), Scripted(text=GOOD_SCRIPT)
    )
    draft = _backend(server).write_script("heat", [FAILED])
    assert draft.script.startswith("1. Find the <object>")
    assert draft.tokens == 36  # both attempts are paid for
    repair = server.received[1].messages
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here is a plan: find it, heat it."}
    assert "script" in repair[-1]["content"] and "Field required" in repair[-1]["content"]


def test_nonsense_every_time_gets_one_repair_then_a_one_line_refusal(server: ChatServer) -> None:
    server.push(*[Scripted(text="I cannot help with that, banana.")] * 3)
    with pytest.raises(LLMOutputError, match="after 2 requests") as info:
        _backend(server).write_script("heat", [FAILED_7])
    assert info.value.raw == "I cannot help with that, banana."
    message = str(info.value)
    assert "banana" in message and "\n" not in message
    assert "model 'test-model'" in message and "task type 'heat' (trajectory 7)" in message
    assert len(server.received) == 2  # the retries setting (2) does not buy more repairs


def test_script_lines_must_be_numbered_in_order(server: ChatServer) -> None:
    bad = "<script>\n1. Find it.\n3. Heat it.\n</script>"
    server.push(Scripted(text=bad), Scripted(text=bad))
    with pytest.raises(LLMOutputError, match="step 2 is numbered 3"):
        _backend(server, llm_max_retries=1).write_script("heat", [FAILED])


def test_reflect_parses_analysis_failing_step_and_script(server: ChatServer) -> None:
    server.push(Scripted(text=GOOD_REFLECTION))
    refl = _backend(server).reflect(FAILED, "1. Take the <object>.")
    assert refl.failing_step == 2 and "never opened" in refl.analysis
    assert refl.script == "1. Find the <object>: open closed cabinets first\n2. Take the <object>."
    assert refl.tokens == 18
    assert "1. Take the <object>." in server.received[0].messages[1]["content"]


def test_reflect_accepts_json_answers(server: ChatServer) -> None:
    answer = (
        '```json\n{"analysis": "looped on take", "failing_step": "none", '
        '"script": ["1. Open it.", "2. Take it."]}\n```'
    )
    server.push(Scripted(text=answer))
    refl = _backend(server).reflect(FAILED, "1. Take it.")
    assert refl.failing_step is None and refl.script == "1. Open it.\n2. Take it."


def test_rate_limit_and_server_errors_are_retried_by_the_client(server: ChatServer) -> None:
    server.push(
        Scripted(status=429, text="slow down"), Scripted(status=500), Scripted(text=GOOD_SCRIPT)
    )
    draft = _backend(server).write_script("heat", [FAILED])
    assert draft.script.startswith("1.") and len(server.received) == 3


def test_persistent_rate_limit_gives_a_clear_error(server: ChatServer) -> None:
    server.push(*[Scripted(status=429, text="quota exceeded")] * 3)
    with pytest.raises(LLMError, match=r"rate-limiting \(HTTP 429\).*quota exceeded"):
        _backend(server).write_script("heat", [FAILED])


def test_persistent_server_error_names_the_status(server: ChatServer) -> None:
    server.push(*[Scripted(status=503, text="overloaded")] * 2)
    with pytest.raises(LLMError, match="HTTP 503.*overloaded"):
        _backend(server, llm_max_retries=1).write_script("heat", [FAILED])


def test_slow_answer_within_timeout_succeeds(server: ChatServer) -> None:
    server.push(Scripted(text=GOOD_SCRIPT, delay_s=0.4))
    assert _backend(server, llm_timeout_s=5.0).write_script("heat", [FAILED]).script


def test_answer_slower_than_timeout_raises_llm_error(server: ChatServer) -> None:
    server.push(Scripted(text=GOOD_SCRIPT, delay_s=1.5))
    backend = _backend(server, llm_timeout_s=0.3, llm_max_retries=0)
    with pytest.raises(LLMError, match=r"did not answer within 0.3s") as info:
        backend.write_script("heat", [FAILED])
    assert not isinstance(info.value, LLMOutputError)


def test_unreachable_server_is_reported_with_its_address() -> None:
    settings = Settings(
        openai_base_url="http://127.0.0.1:9/v1", llm_max_retries=0, llm_timeout_s=2.0
    )
    with pytest.raises(LLMError, match="cannot reach http://127.0.0.1:9/v1"):
        OpenAIBackend(settings).chat([{"role": "user", "content": "hi"}])


def test_body_that_is_not_json_is_an_output_error(server: ChatServer) -> None:
    server.push(Scripted(raw_body="<html>gateway</html>"))
    with pytest.raises(LLMOutputError, match="unreadable response"):
        _backend(server, llm_max_retries=0).chat([{"role": "user", "content": "hi"}])


def test_empty_answer_is_retried(server: ChatServer) -> None:
    server.push(Scripted(text="   "), Scripted(text=GOOD_SCRIPT))
    assert _backend(server).write_script("heat", [FAILED]).script.startswith("1.")


def test_chat_returns_text_and_tokens_and_passes_stop(server: ChatServer) -> None:
    server.push(Scripted(text="go to countertop 1", prompt_tokens=50, completion_tokens=5))
    reply = _backend(server).chat([{"role": "user", "content": "act"}], stop=["\n"])
    assert reply.text == "go to countertop 1" and reply.tokens == 55
    assert reply.prompt_tokens == 50 and server.received[0].body["stop"] == ["\n"]


def test_missing_endpoint_and_key_is_a_config_error() -> None:
    settings = Settings(openai_base_url=None, openai_api_key=None)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend(settings)


def test_parser_rejects_prose_between_steps() -> None:
    with pytest.raises(LLMOutputError, match="line 2 is not a numbered step"):
        parse_answer("<script>1. Go.\nthen heat it\n2. Put.</script>", ScriptAnswer)


def test_parser_requires_an_analysis_for_reflections() -> None:
    with pytest.raises(LLMOutputError, match="analysis"):
        parse_answer("<analysis> </analysis><script>1. Go.</script>", ReflectAnswer)


# -- every call ends: bounded requests, one repair, no resend of a request out of time ----

RAMBLE = "I think we should look around the room first and then maybe consider the "


def test_every_request_sends_max_tokens_and_the_stop_of_its_kind(server: ChatServer) -> None:
    server.push(
        Scripted(text="no tags"), Scripted(text=GOOD_SCRIPT), Scripted(text=GOOD_REFLECTION)
    )
    backend = _backend(server, llm_max_tokens_build=300, llm_max_tokens_reflect=500)
    backend.write_script("heat", [FAILED])  # the answer, then its repair
    backend.reflect(FAILED, "1. Take the <object>.")
    sent = [r.body for r in server.received]
    assert [b["max_tokens"] for b in sent] == [300, 300, 500]
    assert [b["stop"] for b in sent] == [["</rationale>"], ["</rationale>"], ["</script>"]]
    assert all(b["stream"] is True for b in sent)


def test_chat_without_a_limit_is_bounded_by_the_build_limit(server: ChatServer) -> None:
    server.push(Scripted(text="look"))
    _backend(server, llm_max_tokens_build=256).chat([{"role": "user", "content": "act"}])
    assert server.received[0].body["max_tokens"] == 256


def test_max_tokens_setting_is_read_from_the_environment(
    server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMP_LLM_MAX_TOKENS_REFLECT", "2048")
    server.push(Scripted(text=GOOD_REFLECTION))
    settings = Settings(openai_base_url=server.base_url, llm_model="m")
    OpenAIBackend(settings).reflect(FAILED, "1. Take it.")
    assert server.received[0].body["max_tokens"] == 2048


def test_stop_sequence_removed_by_the_server_still_closes_the_last_section(
    server: ChatServer,
) -> None:
    server.push(Scripted(text=GOOD_SCRIPT + "\nAnd some more words the model goes on with."))
    draft = _backend(server).write_script("heat", [FAILED])
    assert server.received[0].ended == "stop"  # the server stopped at </rationale> ...
    assert draft.rationale.endswith("then placed it.")  # ... and the section still parses


def test_never_ending_answer_is_cut_then_repaired_once_then_refused(server: ChatServer) -> None:
    server.push(*[Scripted(text=RAMBLE, endless=True)] * 3)
    with pytest.raises(LLMOutputError) as info:
        _backend(server, llm_max_tokens_build=64).write_script("heat", [FAILED_7])
    message = str(info.value)
    assert "cut at max_tokens=64" in message and "MEMP_LLM_MAX_TOKENS_BUILD" in message
    assert "model 'test-model'" in message and "(trajectory 7)" in message
    assert "\n" not in message and "after 2 requests" in message
    assert [r.ended for r in server.received] == ["length", "length"]
    assert all(r.body["max_tokens"] == 64 for r in server.received)
    repair = server.received[1].messages
    assert "cut off at the limit of 64 tokens" in repair[-1]["content"]
    assert repair[-2]["content"].startswith(RAMBLE.strip())


def test_cut_answer_then_a_short_repair_is_used(server: ChatServer) -> None:
    server.push(Scripted(text=RAMBLE, endless=True), Scripted(text=GOOD_REFLECTION))
    refl = _backend(server, llm_max_tokens_reflect=64).reflect(FAILED, "1. Take it.")
    assert refl.failing_step == 2 and refl.tokens == 11 + 64 + 18


def test_server_that_ignores_max_tokens_is_cut_by_the_client(server: ChatServer) -> None:
    server.push(Scripted(text=RAMBLE, endless=True, honour_max_tokens=False))
    reply = _backend(server).chat([{"role": "user", "content": "act"}], max_tokens=64)
    assert reply.cut and reply.finish_reason == "length" and reply.completion_tokens == 64
    assert server.received[0].done.wait(10) and server.received[0].ended == "hung up"


def test_endless_slow_stream_ends_at_the_timeout_and_is_not_sent_again(
    server: ChatServer,
) -> None:
    slow = Scripted(text=RAMBLE, endless=True, honour_max_tokens=False, token_delay_s=0.02)
    server.push(slow, slow, slow)
    backend = _backend(server, llm_timeout_s=0.5, llm_max_retries=2)
    with pytest.raises(LLMError, match=r"did not finish its answer within 0.5s: \d+ of at most"):
        backend.write_script("heat", [FAILED])
    assert len(server.received) == 1  # the same request would only run out of time again
    assert server.received[0].done.wait(10) and server.received[0].ended == "hung up"


def test_silent_server_is_sent_again_and_the_bound_is_stated(server: ChatServer) -> None:
    server.push(Scripted(text=GOOD_SCRIPT, delay_s=1.0), Scripted(text=GOOD_SCRIPT, delay_s=1.0))
    backend = _backend(server, llm_timeout_s=0.3, llm_max_retries=1)
    with pytest.raises(LLMError, match=r"within 0.3s \(at most 0.6s .*\(2 attempts\)"):
        backend.chat([{"role": "user", "content": "hi"}])
    assert len(server.received) == 2 and backend.call_bound_s == pytest.approx(1.2)


def test_each_finished_call_is_reported_for_progress(server: ChatServer) -> None:
    server.push(Scripted(text="no tags"), Scripted(text=GOOD_SCRIPT))
    backend = _backend(server)
    reports: list[CallReport] = []
    backend.on_call = reports.append
    backend.write_script("heat", [FAILED_7])
    (report,) = reports
    assert (report.kind, report.requests, report.tokens) == ("script", 2, 36)
    assert report.subject == "task type 'heat' (trajectory 7)"
