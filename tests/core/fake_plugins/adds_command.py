"""A plugin adding a subcommand to the edgekit CLI."""

import click

import edgekit


@edgekit.hookimpl
def edgekit_register_commands(cli):
    @cli.command()
    @click.option("--who", default="world")
    def hello(who):
        """Say hello."""
        click.echo(f"hello {who}")
