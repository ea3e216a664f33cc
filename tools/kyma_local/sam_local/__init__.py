"""`make sam-local`: the built artifact (`sam build`'s .aws-sam/build) run by the real SAM CLI in
Docker, against the project's embedded AWS and MiniMax sandbox, every answer checked.

- `derive`: what the local run needs, derived from the built template into files under
  .aws-sam/local/ (template.yaml is never edited);
- `workarounds`: SAM CLI 1.170.0's defects, each worked around in one commented place;
- `checks`: `sam local invoke` of every zip function on its events/*.json, and `sam local
  start-api` driven by curl, with two accounts, past the 60 s mark;
- `__main__`: starts the embedded AWS and the sandbox, runs both, stops everything.
"""
