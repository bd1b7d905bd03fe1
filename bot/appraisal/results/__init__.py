"""Results: a period's results computed from storage, checked, closed as drafts, calibrated, published and read.

In the order the data flows: `schedule` (which periods close with a month, and when), `roster` (who is appraised),
`compute` (the engine's input from storage, and the engine run over it), `quality` and `gate` (the data-quality
findings and the results they hold back), `store` (frozen results and the period's state), `views` (what the
templates read), `steps` (what the close and the publication share), `close`, `calibrate`, `publish`.

Everything a result is computed from goes through `compute.gather`, so a total pushed to a member is what
`kpibot score preview` computes from the same values written to a CSV.
"""
