"""The Python Tuner API, as simple as Snowflake's ``tune.Tuner`` or Ray Tune's ``Tuner``.

    from trial_worker import tune

    def train(ctx):
        model = XGBClassifier(**ctx.params, callbacks=[ctx.xgboost_callback()])
        model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
        ctx.log_model(model)
        return {"val_f1": f1_score(y_val, model.predict(x_val))}

    results = tune.Tuner(train, {"max_depth": tune.randint(3, 15), "learning_rate": tune.loguniform(0.01, 0.3)},
                         tune.TunerConfig(metric="val_f1", mode="max", num_trials=50, max_concurrent_trials=4)).run()
    print(results.best_params, results.best_result)
"""

from trial_worker.context import TrialContext, get_context
from trial_worker.exceptions import TrialPruned
from trial_worker.tune.space import choice, lograndint, loguniform, qrandint, quniform, randint, uniform
from trial_worker.tune.tuner import Interrupted, NoTrialCompleted, Tuner, TunerConfig, TunerResults
from tuning_types.study import Fidelity

__all__ = [
    "Fidelity", "Interrupted", "NoTrialCompleted", "TrialContext", "TrialPruned", "Tuner", "TunerConfig", "TunerResults", "choice", "get_context",
    "loguniform", "lograndint", "qrandint", "quniform", "randint", "uniform",
]
