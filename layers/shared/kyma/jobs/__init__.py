"""Long-form speech jobs: a whole book in one request, worked through a queue, billed when delivered.

`request` (the body read and priced), `submit` (reserve + job row in one transaction, one
message), `worker` (the queue's steps: split, submit parts, poll, fetch, join, settle),
`join` (parts' audio joined exactly, as a stream), `store` (table Jobs, the bucket, the queue),
`slots` (upstream capacity and the per-account cap), `split` (parts at natural boundaries),
`views` (what a customer sees; cancel), `records` (ids, states, items).
"""
