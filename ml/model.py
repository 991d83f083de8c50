"""The trained model: a LightGBM booster plus a probability calibrator, saved without pickles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from ml.features import feature_matrix


@dataclass
class Calibrator:
    """Maps the booster's raw log-odds to calibrated probabilities.

    Platt: sigmoid(a * raw + b). Isotonic: piecewise-linear interpolation through fitted points.
    Stored as plain JSON so a model can be inspected and loaded without unpickling code.
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray, method: str, seed: int) -> Calibrator:
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, random_state=seed)
            lr.fit(raw.reshape(-1, 1), labels)
            return cls(method="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            iso.fit(raw, labels)
            return cls(
                method="isotonic",
                x=[float(v) for v in iso.X_thresholds_],
                y=[float(v) for v in iso.y_thresholds_],
            )
        raise ValueError(f"Unknown calibration method {method!r}")

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype="float64")
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * raw + self.b)))
        return np.interp(raw, np.asarray(self.x), np.asarray(self.y))

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        return cls(**json.loads(text))


@dataclass
class ScoringModel:
    """A booster, its calibrator and its exact feature list: everything scoring needs."""

    booster: lgb.Booster
    calibrator: Calibrator
    features: list[str]

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds."""
        return self.booster.predict(feature_matrix(frame, self.features), raw_score=True)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class."""
        return self.calibrator.transform(self.raw_score(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-feature log-odds contributions plus a `base_value` column (they sum to raw_score)."""
        contrib = self.booster.predict(feature_matrix(frame, self.features), pred_contrib=True)
        return pd.DataFrame(contrib, columns=[*self.features, "base_value"], index=frame.index)

    def save(self, directory: Path) -> dict[str, str]:
        """Write the three files; returns name -> path for `mlflow.pyfunc.log_model(artifacts=)`."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "booster": directory / "booster.txt",
            "calibrator": directory / "calibrator.json",
            "features": directory / "features.json",
        }
        self.booster.save_model(str(files["booster"]))
        files["calibrator"].write_text(self.calibrator.to_json())
        files["features"].write_text(json.dumps(self.features))
        return {name: str(path) for name, path in files.items()}

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> ScoringModel:
        return cls(
            booster=lgb.Booster(model_file=artifacts["booster"]),
            calibrator=Calibrator.from_json(Path(artifacts["calibrator"]).read_text()),
            features=json.loads(Path(artifacts["features"]).read_text()),
        )


class CalibratedBoosterModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: `predict` gives calibrated probabilities; `scoring_model` the rest."""

    def load_context(self, context) -> None:
        self.scoring_model = ScoringModel.load(context.artifacts)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.scoring_model.predict_proba(model_input)
