"""sources.chat_client against the local ChatServer (tests/servers/chat.py): the body sent, both
answer forms, retries, OpenAI-style errors, secrets kept out of errors and results, and
complete_many's order and concurrency. Backoff waits go to a recorder instead of sleeping."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
import traceback

import pytest
from servers.chat import PARAGRAPH, ChatServer

from sources.chat_client import ChatClient, ChatError, ChatRequest, ChatResult, public_url
from sources.errors import SourceError
from sources.http_client import HttpError, RetryPolicy

KEY = "sk-live-7f3a9c2e1b8d4f60a5e7"
MESSAGES = (
    {"role": "system", "content": "あなたは日本語で簡潔に答えるアシスタントです。"},
    {"role": "user", "content": "梅雨について説明してください。"},
)
PROMPT_CHARS = sum(len(m["content"]) for m in MESSAGES)


@pytest.fixture
def server():
    with ChatServer() as chat:
        yield chat


@pytest.fixture
def waits():
    return []


def make_client(server, waits, **overrides) -> ChatClient:
    options = {
        "retry": RetryPolicy(max_attempts=3, backoff_base_seconds=0.5, backoff_max_seconds=30.0),
        "timeout_seconds": 10.0,
        "sleep": waits.append,
    }
    return ChatClient(server.url, **{**options, **overrides})


def request(**sampling) -> ChatRequest:
    return ChatRequest("llm-jp-3-1.8b-instruct", MESSAGES, sampling or {"temperature": 0.0, "max_tokens": 40})


# -- answers -----------------------------------------------------------------------------------


def test_streaming_and_non_streaming_give_the_same_result(server, waits):
    results = {}
    for stream in (False, True):
        with make_client(server, waits, stream=stream) as client:
            results[stream] = client.complete(request())
    plain, streamed = results[False], results[True]
    assert plain.content == PARAGRAPH[:40] and plain.finish_reason == "length"
    assert plain.usage == {
        "prompt_tokens": PROMPT_CHARS,
        "completion_tokens": 40,
        "total_tokens": PROMPT_CHARS + 40,
    }
    assert (streamed.content, streamed.finish_reason, streamed.usage) == (
        plain.content,
        plain.finish_reason,
        plain.usage,
    )
    assert (plain.model, streamed.model) == ("llm-jp-3-1.8b-instruct", "llm-jp-3-1.8b-instruct")
    assert (plain.response_id, streamed.response_id) == ("chatcmpl-1", "chatcmpl-2")
    assert plain.refusal is None and streamed.refusal is None
    assert json.loads(plain.raw)["choices"][0]["message"]["content"] == PARAGRAPH[:40]
    assert streamed.raw.startswith(b"data: {") and streamed.raw.endswith(b"data: [DONE]\n\n")
    assert streamed.raw.count(b"data: ") == 1 + 10 + 1 + 1  # role, 10 deltas of 4 chars, usage, [DONE]
    assert plain.retrieved_at.endswith("+00:00") and waits == []


def test_a_full_answer_ends_with_stop(server, waits):
    result = make_client(server, waits, stream=True).complete(request(max_tokens=500))
    assert (result.content, result.finish_reason, result.usage["completion_tokens"]) == (
        PARAGRAPH,
        "stop",
        len(PARAGRAPH),
    )


def test_the_body_sent_is_the_canonical_request(server, waits):
    sent = request(temperature=0.7, top_p=0.95, max_tokens=64, seed=1234, stop=["。"])
    make_client(server, waits).complete(sent)
    make_client(server, waits, stream=True).complete(sent)
    plain, streamed = server.requests
    assert (plain.method, plain.path) == ("POST", "/v1/chat/completions")
    assert plain.headers["Content-Type"] == "application/json"
    assert plain.raw == sent.body(stream=False)  # byte for byte
    assert streamed.raw == sent.body(stream=True)
    assert plain.body == {
        "model": "llm-jp-3-1.8b-instruct",
        "messages": [dict(m) for m in MESSAGES],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 64,
        "seed": 1234,
        "stop": ["。"],
    }
    assert streamed.body == {**plain.body, "stream": True, "stream_options": {"include_usage": True}}
    assert "梅雨について".encode() in plain.raw  # UTF-8, not \\u escapes
    assert b": " not in plain.raw and b", " not in plain.raw  # compact
    assert list(json.loads(plain.raw)) == sorted(plain.body)  # sorted keys


def test_sha256_is_the_same_for_the_same_request_and_independent_of_streaming():
    one = ChatRequest("m", MESSAGES, {"temperature": 0.7, "max_tokens": 64})
    two = ChatRequest(
        "m", [dict(reversed(list(m.items()))) for m in MESSAGES], {"max_tokens": 64, "temperature": 0.7}
    )
    assert one.sha256() == two.sha256()
    assert len(one.sha256()) == 64
    assert one.body(stream=True) != one.body(stream=False)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.8},
        {"top_p": 0.9},
        {"max_tokens": 65},
        {"seed": 1},
        {"stop": ["\n"]},
        {"frequency_penalty": 0.0},  # a key added, even at its default value
    ],
)
def test_sha256_changes_with_any_sampling_value(change):
    base = {"temperature": 0.7, "max_tokens": 64}
    assert (
        ChatRequest("m", MESSAGES, base).sha256() != ChatRequest("m", MESSAGES, {**base, **change}).sha256()
    )


def test_sha256_changes_with_the_model_or_a_message():
    base = ChatRequest("m", MESSAGES, {"temperature": 0.7})
    assert base.sha256() != ChatRequest("m2", MESSAGES, {"temperature": 0.7}).sha256()
    edited = (MESSAGES[0], {"role": "user", "content": "梅雨について説明して。"})
    assert base.sha256() != ChatRequest("m", edited, {"temperature": 0.7}).sha256()


def test_a_request_is_copied_so_its_identity_cannot_change_afterwards():
    message = {"role": "user", "content": "こんにちは"}
    sampling = {"temperature": 0.0, "stop": ["。"]}
    sent = ChatRequest("m", [message], sampling)
    before = sent.sha256()
    message["content"], sampling["temperature"] = "さようなら", 1.0
    sampling["stop"].append("\n")  # nested values too
    assert sent.sha256() == before
    assert isinstance(sent.messages, tuple)


@pytest.mark.parametrize(
    "model, messages, sampling, words",
    [
        ("m", MESSAGES, {"stream": True}, "must not set ['stream']"),
        ("m", MESSAGES, {"model": "x"}, "must not set ['model']"),
        ("m", MESSAGES, {"n": 2}, "only one choice"),
        ("m", MESSAGES, {"temperature": float("nan")}, "not JSON-serializable"),
        ("m", MESSAGES, {"logit_bias": {1, 2}}, "not JSON-serializable"),
        ("m", (), {}, "messages is empty"),
        ("m", ({"content": "x"},), {}, "string 'role'"),
        ("", MESSAGES, {}, "model must be"),
    ],
)
def test_a_bad_request_is_refused_at_once(model, messages, sampling, words):
    with pytest.raises(ValueError) as err:
        ChatRequest(model, messages, sampling)
    assert words in str(err.value)


def test_a_refusal_is_read_in_both_forms(waits):
    refusing = lambda _request: ("", "stop", "その依頼にはお応えできません。")  # noqa: E731
    with ChatServer(reply=refusing) as server:
        plain = make_client(server, waits).complete(request())
        streamed = make_client(server, waits, stream=True).complete(request())
    assert (plain.content, plain.refusal, plain.finish_reason) == (
        "",
        "その依頼にはお応えできません。",
        "stop",
    )
    assert (streamed.content, streamed.refusal, streamed.finish_reason) == ("", plain.refusal, "stop")


# -- retries and errors ------------------------------------------------------------------------


def test_429_with_retry_after_then_success(server, waits):
    server.fail_next(429, retry_after=7)
    client = make_client(server, waits)
    result = client.complete(request())
    assert result.content == PARAGRAPH[:40]
    assert waits == [7.0]
    assert len(server.requests) == 2
    stats = client.stats()
    assert (stats["requests"], stats["retries"], stats["status_429"], stats["status_200"]) == (2, 1, 1, 1)


def test_500_is_retried_then_an_http_error(server, waits):
    server.fail_next(500, times=5, body="Internal Server Error")
    client = make_client(server, waits)
    with pytest.raises(HttpError) as err:
        client.complete(request())
    assert (err.value.reason, err.value.status, err.value.attempts) == ("http_500", 500, 3)
    assert err.value.uri == client.url == server.url + "/chat/completions"
    assert "Internal Server Error" in str(err.value)
    assert len(server.requests) == 3 and len(waits) == 2
    assert all(0 <= w <= 2.0 for w in waits)  # full jitter under base * 2 ** (n - 1)


def test_400_with_an_openai_error_body_is_a_chat_error_with_the_message_verbatim(server, waits):
    with pytest.raises(ChatError) as err:
        make_client(server, waits).complete(request(max_tokens=5000))
    expected = (
        "This model's maximum context length is 4096 tokens. However, you requested"
        f" {PROMPT_CHARS + 5000} tokens ({PROMPT_CHARS} in the messages, 5000 in the completion)."
        " Please reduce the length of the messages or completion."
    )
    assert err.value.message == expected
    assert (err.value.status, err.value.type, err.value.code) == (400, "BadRequestError", 400)
    assert str(err.value).startswith(f"{server.url}/chat/completions: {expected} (")
    assert isinstance(err.value, SourceError)
    assert len(server.requests) == 1 and waits == []  # a 400 is not retried


def test_an_error_message_keeps_its_whitespace_and_newlines(server, waits):
    message = "The model `llm-jp-4`  does not exist.\n利用可能なモデル: llm-jp-3-1.8b-instruct"
    server.fail_next(
        404, body={"error": {"message": message, "type": "NotFoundError", "code": "model_not_found"}}
    )
    with pytest.raises(ChatError) as err:
        make_client(server, waits).complete(request())
    assert (err.value.message, err.value.status, err.value.code) == (message, 404, "model_not_found")


@pytest.mark.parametrize(
    "status, body, message, error_type",
    [
        (400, {"object": "error", "message": "古い形", "type": "BadRequestError", "param": None, "code": 400},
         "古い形", "BadRequestError"),
        (401, {"error": "Unauthorized"}, "Unauthorized", None),
    ],
)  # fmt: skip
def test_other_error_shapes_are_chat_errors(server, waits, status, body, message, error_type):
    server.fail_next(status, body=body)
    with pytest.raises(ChatError) as err:
        make_client(server, waits).complete(request())
    assert (err.value.message, err.value.type, err.value.status) == (message, error_type, status)


def test_a_4xx_without_an_openai_body_is_an_http_error(server, waits):
    client = ChatClient(server.url.removesuffix("/v1"), sleep=waits.append)  # forgot the /v1
    with pytest.raises(HttpError) as err:
        client.complete(request())
    assert (err.value.reason, err.value.status) == ("http_404", 404)
    assert '{"detail":"Not Found"}' in str(err.value) and not isinstance(err.value, ChatError)


def test_an_error_in_a_200_is_a_chat_error(server, waits):
    server.fail_next(
        200, body={"error": {"message": "engine dead", "type": "InternalServerError", "code": 500}}
    )
    with pytest.raises(ChatError) as err:
        make_client(server, waits).complete(request())
    assert (err.value.message, err.value.status, err.value.code) == ("engine dead", 200, 500)


def test_a_200_without_choices_is_a_source_error_quoting_the_body(server, waits):
    server.fail_next(200, body={"id": "chatcmpl-x", "object": "chat.completion", "detail": "空"})
    client = make_client(server, waits)
    with pytest.raises(SourceError) as err:
        client.complete(request())
    assert err.value.uri == client.url
    assert "no 'choices'" in err.value.problem and '"detail":"空"' in err.value.problem
    assert len(server.requests) == 1


@pytest.mark.parametrize("garble, words", [(False, "without 'data: [DONE]'"), (True, "is not JSON")])
def test_a_broken_stream_is_a_source_error_naming_the_url(server, waits, garble, words):
    server.cut_next_stream(garble=garble)
    client = make_client(server, waits, stream=True)
    with pytest.raises(SourceError) as err:
        client.complete(request())
    assert err.value.uri == client.url and words in err.value.problem
    assert not isinstance(err.value, HttpError)
    assert len(server.requests) == 1 and waits == []
    assert client.complete(request()).content == PARAGRAPH[:40]  # the next stream is whole


def test_chat_error_survives_pickling():
    err = ChatError("http://h/v1/chat/completions", "bad (HTTP 400)", 400, "BadRequestError", 400, "bad")
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.status, back.type, back.code, back.message) == (
        str(err),
        400,
        "BadRequestError",
        400,
        "bad",
    )


# -- secrets -----------------------------------------------------------------------------------


def _everything_about(err: BaseException) -> str:
    return "\n".join(
        [str(err), repr(err), repr(err.args), "".join(traceback.format_exception(err))]
        + [f"{k}={v!r}" for k, v in vars(err).items()]
    )


def test_the_api_key_goes_in_the_header_and_never_into_errors(server, waits):
    def echo(logged):
        return {"error": {"message": f"bad key: {logged.headers['Authorization']}", "type": "auth"}}

    server.fail_next(401, body=echo)
    client = make_client(server, waits, api_key=KEY)
    with pytest.raises(ChatError) as err:
        client.complete(request())
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"  # sent, and only there
    assert KEY not in server.requests[0].raw.decode()
    assert err.value.message == "bad key: Bearer [redacted]"
    assert KEY not in _everything_about(err.value)
    server.fail_next(500, times=3, body=lambda logged: f"upstream said: {logged.headers['Authorization']}")
    with pytest.raises(HttpError) as err:
        client.complete(request())
    assert "Bearer [redacted]" in str(err.value)
    assert KEY not in _everything_about(err.value)
    assert KEY not in pickle.dumps(err.value).decode("latin-1")
    assert KEY not in repr(client) and "api_key=set" in repr(client)


def test_a_key_echoed_in_an_answer_is_not_returned(waits):
    with ChatServer(reply=lambda _request: (f"あなたの鍵は{KEY}です。", "stop")) as server:
        for stream in (False, True):
            result = make_client(server, waits, api_key=KEY, stream=stream).complete(request())
            assert result.content == "あなたの鍵は[redacted]です。"
            assert KEY.encode() not in result.raw and KEY not in repr(result)


def test_credentials_in_the_base_url_stay_out_of_errors(server, waits):
    secret = "q-secret-4f1e9b7c"
    url = server.url + f"?api-version=2024-06-01&api_key={secret}"
    server.fail_next(503, times=3, body=lambda logged: f"no route for {logged.path}?api_key={secret}")
    client = ChatClient(url, sleep=waits.append, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(HttpError) as err:
        client.complete(request())
    assert err.value.uri == server.url + "/chat/completions?api-version=2024-06-01"
    assert secret not in _everything_about(err.value) and secret not in repr(client)
    assert server.requests[0].query == f"api-version=2024-06-01&api_key={secret}"  # sent all the same


def test_credentials_stay_out_of_a_connection_error(waits):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    secret = "tok-9d8c7b6a5f4e"
    client = ChatClient(f"http://127.0.0.1:{port}/v1?token={secret}", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(HttpError) as err:
        client.complete(request())
    assert err.value.reason == "connection"
    assert "[redacted]" in str(err.value)  # requests names the URL it could not reach
    assert secret not in _everything_about(err.value)


@pytest.mark.parametrize(
    "url, public",
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://user:p%40ss@llm.example/v1", "https://llm.example/v1"),
        ("https://tok@llm.example:8443/v1", "https://llm.example:8443/v1"),
        ("http://h/v1?key=a&api_key=b&API-KEY=c&token=d&access_token=e&x-api-key=f", "http://h/v1"),
        (
            "http://h/v1?api-version=2024-06-01&sig=zzz&monkey=1#k=v",
            "http://h/v1?api-version=2024-06-01&monkey=1",
        ),
        ("http://h/v1?a=%E6%A2%85&client_secret=s", "http://h/v1?a=%E6%A2%85"),
    ],
)
def test_public_url_strips_credentials(url, public):
    assert public_url(url) == public


# -- many requests -----------------------------------------------------------------------------


def numbered(i: int, **sampling) -> ChatRequest:
    return ChatRequest("m", ({"role": "user", "content": f"質問{i}"},), {"max_tokens": 40, **sampling})


def echo_number(request: dict) -> tuple[str, str]:
    return f"答え{request['messages'][0]['content'].removeprefix('質問')}", "stop"


def test_complete_many_bounds_concurrency_and_runs_in_parallel(waits):
    with ChatServer(reply=echo_number, delay_seconds=0.1) as server:
        client = make_client(server, waits, concurrency=4)
        started = time.monotonic()
        results = list(client.complete_many(numbered(i) for i in range(16)))
        elapsed = time.monotonic() - started
        assert server.max_in_flight == 4
    assert [r.content for _, r in results] == [f"答え{i}" for i in range(16)]
    assert [req.messages[0]["content"] for req, _ in results] == [f"質問{i}" for i in range(16)]
    assert elapsed < 1.0  # 4 rounds of 0.1 s; one at a time would take 1.6 s


def test_complete_many_keeps_input_order_when_answers_arrive_out_of_order(waits):
    arrivals: list[str] = []
    lock = threading.Lock()

    def slower_first(request: dict) -> tuple[str, str]:
        content, reason = echo_number(request)
        time.sleep(0.03 * (8 - int(content.removeprefix("答え"))))
        with lock:
            arrivals.append(content)
        return content, reason

    with ChatServer(reply=slower_first) as server:
        results = list(
            make_client(server, waits, concurrency=8).complete_many([numbered(i) for i in range(8)])
        )
    assert arrivals != sorted(arrivals)  # the server really finished them out of order
    assert [r.content for _, r in results] == [f"答え{i}" for i in range(8)]


def test_a_failure_in_the_middle_yields_its_error_and_the_rest_go_on(server, waits):
    requests = [numbered(i) for i in range(5)]
    requests[2] = numbered(2, max_tokens=10_000)  # over max_model_len: a 400
    results = list(make_client(server, waits, concurrency=2).complete_many(requests))
    assert [req for req, _ in results] == requests
    kinds = [type(r).__name__ for _, r in results]
    assert kinds == ["ChatResult", "ChatResult", "ChatError", "ChatResult", "ChatResult"]
    assert results[2][1].status == 400 and all(
        isinstance(r, ChatResult) for i, (_, r) in enumerate(results) if i != 2
    )


def test_complete_many_reads_its_input_lazily(server, waits):
    taken = []

    def endless():
        i = 0
        while True:
            taken.append(i)
            yield numbered(i)
            i += 1

    results = make_client(server, waits, concurrency=2).complete_many(endless())
    first = [next(results) for _ in range(3)]
    results.close()
    assert [r.content for _, r in first] == [PARAGRAPH[:40]] * 3
    assert len(taken) <= 3 + 2 * 2  # a window of 2 x concurrency ahead, no more


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
def test_concurrency_must_be_a_positive_integer(concurrency):
    with pytest.raises(ValueError, match="concurrency"):
        ChatClient("http://127.0.0.1:8000/v1", concurrency=concurrency)


@pytest.mark.parametrize(
    "base_url",
    ["127.0.0.1:8000/v1", "localhost:8000/v1", "ftp://h/v1", "/v1", f"llm.example/v1?api_key={KEY}"],
)
def test_base_url_needs_a_scheme_and_the_error_shows_no_key(base_url):
    with pytest.raises(ValueError, match="http:// or https://") as err:
        ChatClient(base_url)
    assert KEY not in str(err.value)


@pytest.mark.parametrize("api_key", ["", "two words", "鍵"])
def test_an_api_key_that_cannot_go_in_a_header_is_refused(api_key):
    with pytest.raises(ValueError, match="api_key"):
        ChatClient("http://127.0.0.1:8000/v1", api_key=api_key)


def test_a_closed_client_refuses_requests(server, waits):
    client = make_client(server, waits)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.complete(request())
