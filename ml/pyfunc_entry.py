"""MLflow models-from-code entry: the model is rebuilt from code and files, never unpickled."""

import mlflow.models

from ml.model import CalibratedBoosterModel

mlflow.models.set_model(CalibratedBoosterModel())
