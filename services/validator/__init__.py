"""The validator service: generated JSONL → accepted.jsonl + rejected.jsonl (a reason code and a
detail per row) + report.json. The filter chain (pipeline.validate) is plain Python; servicer.py
is the gRPC edge."""
