"""Drive `airlock serve` as an agent would, over stdio, with the official Python MCP SDK, and
show what the agent sees. Used by the demo (scripts/demo) and by the test suite (as the
independent client).

Usage: demo_client.py AIRLOCK_BINARY POLICY [--json]
The environment (AWS_ENDPOINT_URL, the broker's AWS keys) is passed through to the server.
With --json, prints one JSON object with every call and its result (for tests).
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

CALLS = [
    ("describe_access", {"environment": "staging"}),
    ("list_volumes", {"environment": "staging", "tags": {"env": "staging"}}),
    ("list_volumes", {"environment": "staging"}),
    ("read_logs", {"environment": "staging", "log_group": "/app/staging/api", "limit": 20}),
    ("read_logs", {"environment": "staging", "log_group": "/app/other/api"}),
    ("list_volumes", {"environment": "staging", "volume_ids": ["vol-*"]}),
    ("read_logs", {"environment": "prod", "log_group": "/app/prod/api"}),
]


def text_of(result):
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def run(binary, policy, as_json):
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "AIRLOCK_", "RUST_"))}
    env.setdefault("AIRLOCK_LOG", "airlock=warn")
    params = StdioServerParameters(command=binary, args=["serve", "--policy", policy], env=env)
    report = {"calls": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            report["server"] = {"name": init.server_info.name, "version": init.server_info.version,
                                "protocol": init.protocol_version}
            tools = await session.list_tools()
            report["tools"] = [t.name for t in tools.tools]
            if not as_json:
                print(f"connected to {init.server_info.name} {init.server_info.version} "
                      f"(MCP {init.protocol_version}); tools: {', '.join(report['tools'])}\n")
            async def call(name, args):
                result = await session.call_tool(name, arguments=args)
                body = result.structured_content or json.loads(text_of(result) or "{}")
                report["calls"].append({"tool": name, "arguments": args, "is_error": bool(result.is_error),
                                        "body": body, "text": text_of(result)})
                if not as_json:
                    show(name, args, bool(result.is_error), body)
                return body

            for name, args in CALLS:
                await call(name, args)
            # A destructive request: queued for a human, never run on the agent's say-so.
            volumes = await call("list_volumes", {"environment": "staging", "states": ["available"]})
            spare = next(v["id"] for v in volumes["items"] if not v["protected"])
            protected = next(v["id"] for v in volumes["items"] if v["protected"])
            req = await call("request_delete_volume", {"environment": "staging", "volume_id": spare,
                                                       "reason": "scratch volume from last week's load test; no longer attached"})
            await call("request_delete_volume", {"environment": "staging", "volume_id": protected,
                                                 "reason": "free up space"})
            await call("get_request", {"request_id": req["request_id"]})
    if as_json:
        json.dump(report, sys.stdout)
        print()


def show(name, args, is_error, body):
    print(f"--> agent calls {name} {json.dumps(args)}")
    if is_error:
        print(f"<-- REFUSED/ERROR: {body.get('message')}")
        if body.get("what_you_can_do"):
            print(f"    what the agent may do instead: {body['what_you_can_do']}")
    elif name == "describe_access":
        for env in body["environments"]:
            allowed = ", ".join(a["tool"] + (f" (only {a['only_resources_matching']})" if "only_resources_matching" in a else "")
                                for a in env["allowed"])
            print(f"<-- {env['name']} ({env['account']}, {env['region']}): allowed: {allowed or 'nothing'}")
        print(f"    protected: {body['protected']}")
    elif name == "list_volumes":
        for v in body["items"]:
            att = ", ".join(a["instance_id"] for a in v["attachments"]) or "-"
            print(f"<-- {v['id']} {v['size_gib']:>4} GiB {v['state']:<10} attached: {att:<20} "
                  f"protected: {str(v['protected']):<5} tags: {v['tags']}")
    elif name == "read_logs":
        for e in body["items"]:
            print(f"<-- {e['time']} {e['message']}")
        if body.get("redacted"):
            print(f"    redacted: {body['redacted']['count']} secret(s): {', '.join(body['redacted']['kinds'])}")
        if body.get("note"):
            print(f"    note: {body['note']}")
    elif name == "request_delete_volume":
        print(f"<-- request {body['request_id']} is {body['state']}")
        for step in body["what_happens_next"]:
            print(f"    {step}")
    elif name == "get_request":
        print(f"<-- {body['request_id']}: {body['state']}; next: {body['next']}")
    if not is_error and body.get("scope"):
        s = body["scope"]
        print(f"    ran under a session policy allowing {s['actions']} on {s['resources']} ({s['rule']})")
    print()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(run(sys.argv[1], sys.argv[2], "--json" in sys.argv[3:]))
