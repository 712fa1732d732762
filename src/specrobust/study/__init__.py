"""Studies: methods x seeds, trained, evaluated, analysed and compared, resumable.

    specrobust study cifar10 [--seeds 3,4] [--stages train,eval]

A plan (``study.plan``) names the training runs and the methods read from them; ``study.execute``
runs its stages (``study.stages``) and ``study.tables`` writes RESULTS.md and summary.json.
"""
