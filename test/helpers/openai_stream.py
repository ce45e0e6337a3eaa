"""Streams one chat completion with the official openai SDK and prints what it got, as JSON.

Each chunk's content is printed on its own line ("chunk <json string>") as it arrives, so a test
can act mid-stream; the last line is the summary. Called by test/helpers/python-openai.ts.
"""
import json
import sys

import openai

args = json.loads(sys.argv[1])
client = openai.OpenAI(base_url=args["baseURL"] + "/v1", api_key="unused", max_retries=0)
result = {"text": "", "chunks": 0, "roles": 0, "finish": []}
tool = {"name": "", "arguments": ""}
request = dict(
    model=args["model"],
    messages=[{"role": "user", "content": args.get("content", "Hello")}],
    stream=True,
    stream_options={"include_usage": True},
)
if args.get("tools"):
    request["tools"] = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
if args.get("extra"):
    request["extra_body"] = args["extra"]
try:
    raw = client.chat.completions.with_raw_response.create(**request)
    result["request_id"] = raw.headers.get("x-request-id")
    for chunk in raw.parse():
        result["chunks"] += 1
        if chunk.usage is not None:
            result["usage"] = chunk.usage.model_dump()
        for choice in chunk.choices:
            delta = choice.delta
            if delta.role:
                result["roles"] += 1
            if delta.content:
                result["text"] += delta.content
                print("chunk " + json.dumps(delta.content), flush=True)
            for call in delta.tool_calls or []:
                if call.function and call.function.name:
                    tool["name"] = call.function.name
                if call.function and call.function.arguments:
                    tool["arguments"] += call.function.arguments
            if choice.finish_reason:
                result["finish"].append(choice.finish_reason)
except Exception as e:  # what the SDK raised is what the test checks
    result["error"] = {
        "class": type(e).__name__,
        "api_error": isinstance(e, openai.APIError) and not isinstance(e, openai.APIConnectionError),
        "connection_error": isinstance(e, openai.APIConnectionError),
        "message": str(e),
        "code": getattr(e, "code", None),
    }
if tool["name"]:
    result["tool_call"] = tool
print(json.dumps(result), flush=True)
