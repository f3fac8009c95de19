"""Commands for people: ``annoflow users add|certify|list``."""

from __future__ import annotations

import typer

from cli.app import app, console, store_session
from cli.render import users_table
from common.enums import Role

__all__ = ["users_app"]

users_app = typer.Typer(help="Project members, their roles and certifications.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    email: str = typer.Argument(..., help="The user's email address."),
    project: str = typer.Option(..., "--project", help="Project name or UUID."),
    role: Role = typer.Option(..., "--role", case_sensitive=False, help="The user's role on the project."),
    name: str = typer.Option("", "--name", help="Display name."),
) -> None:
    """Add a user to a project with a role (replacing any role they had there)."""
    with store_session() as store:
        target = store.get_project(project)
        store.add_user(email, name)
        store.set_role(target.id, email, role)
    console.print(f"{email} is {role.value} on project {target.name}", markup=False, highlight=False)


@users_app.command("certify")
def users_certify(
    email: str = typer.Argument(..., help="The user's email address."),
    certification: str = typer.Argument(..., help="The certification a stage may require."),
) -> None:
    """Grant a certification (stages that require it accept the user from now on)."""
    if not certification.strip():
        raise typer.BadParameter("a certification needs a non-blank name", param_hint="CERTIFICATION")
    with store_session() as store:
        store.certify(email, certification)
    console.print(f"{email} holds certification {certification!r}", markup=False, highlight=False)


@users_app.command("list")
def users_list(project: str = typer.Option(..., "--project", help="Project name or UUID.")) -> None:
    """List a project's members with role and certifications."""
    with store_session() as store:
        target = store.get_project(project)
        users = store.list_users(target.id)
    if not users:
        console.print(f"project {target.name} has no users yet; add one with 'annoflow users add EMAIL --project ...'")
        return
    console.print(users_table(target, users))
