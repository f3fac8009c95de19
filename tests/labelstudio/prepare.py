"""Build a migrated Label Studio data dir with one admin and a personal access token.

Run once at bootstrap with the server venv's Python (``make labelstudio-server``); the
test session copies the result, so no test run pays Label Studio's first migrations.

    .venv-labelstudio/bin/python tests/labelstudio/prepare.py DATA_DIR

It writes ``DATA_DIR/annoflow-test.json``: the admin's e-mail, password and token.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

EMAIL = "admin@annoflow.test"
PASSWORD = "annoflow-test-password"  # a throwaway server on loopback for tests only


def main(data_dir: pathlib.Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["LABEL_STUDIO_BASE_DATA_DIR"] = str(data_dir.absolute())
    import label_studio

    sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio.core.settings.label_studio")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--no-color", verbosity=0)

    from jwt_auth.models import LSAPIToken
    from organizations.models import Organization
    from users.models import User

    user = User.objects.filter(email=EMAIL).first()
    if user is None:
        user = User.objects.create_user(email=EMAIL, password=PASSWORD, username="admin")
        user.is_staff = user.is_superuser = True
        user.save()
    org = Organization.objects.first() or Organization.create_organization(created_by=user, title="Label Studio")
    org.add_user(user)
    user.active_organization = org
    user.save(update_fields=["active_organization"])
    token = LSAPIToken.for_user(user).get_full_jwt()
    info = {"email": EMAIL, "password": PASSWORD, "token": token}
    (data_dir / "annoflow-test.json").write_text(json.dumps(info), encoding="utf-8")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
