"""What each session type does: an ordered list of named steps, each a prompt for the LLM."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.models import SessionStatus
from telemetry.catalog import WorkflowStatus


class SessionType(StrEnum):
    TEST_GENERATION = "test_generation"
    MAVEN_MAINTENANCE = "maven_maintenance"
    DOCKER_DEPLOYMENT = "docker_deployment"
    IMPACT_ANALYSIS = "impact_analysis"


class Mode(StrEnum):
    AUTONOMOUS = "autonomous"  # runs every step in a row
    INTERACTIVE = "interactive"  # pauses after each step until resumed
    ANALYSIS_ONLY = "analysis_only"  # asks the LLM for findings, never for changes


# A session's final statuses are the workflow statuses the metrics contract counts.
FINAL_STATUSES = tuple(SessionStatus(status) for status in WorkflowStatus)


@dataclass(frozen=True)
class StepDefinition:
    name: str
    instruction: str


WORKFLOWS: dict[SessionType, tuple[StepDefinition, ...]] = {
    SessionType.TEST_GENERATION: (
        StepDefinition("analyze_project", "Describe the modules and public classes."),
        StepDefinition("find_untested_code", "List the classes and methods that lack unit tests."),
        StepDefinition("generate_tests", "Write JUnit 5 tests for the untested methods."),
        StepDefinition("review_tests", "Review the generated tests for missing edge cases."),
    ),
    SessionType.MAVEN_MAINTENANCE: (
        StepDefinition("analyze_dependencies", "List the Maven dependencies and their versions."),
        StepDefinition("check_vulnerabilities", "Flag dependencies with known vulnerabilities."),
        StepDefinition("plan_updates", "Propose version updates, safest first."),
        StepDefinition("validate_build", "Describe how to validate the build after the updates."),
    ),
    SessionType.DOCKER_DEPLOYMENT: (
        StepDefinition("analyze_runtime", "Identify the runtime, build tool and exposed ports."),
        StepDefinition("write_dockerfile", "Write a multi-stage Dockerfile for the project."),
        StepDefinition("write_compose", "Write a docker-compose.yaml with its dependencies."),
        StepDefinition("plan_healthchecks", "Define health checks and a rollout plan."),
    ),
    SessionType.IMPACT_ANALYSIS: (
        StepDefinition("collect_changes", "Summarise the recent changes of the project."),
        StepDefinition("map_dependencies", "Map which modules depend on the changed code."),
        StepDefinition("select_tests", "List the tests affected by the changes."),
        StepDefinition("summarize_risk", "Rate the risk of the changes and explain why."),
    ),
}


def build_prompt(
    *,
    session_type: str,
    mode: str,
    project_path: str,
    config: dict[str, Any],
    step: StepDefinition,
    previous_outputs: list[str],
) -> list[dict[str, str]]:
    """Chat messages for one step: the task, the project, and what earlier steps found."""
    system = (
        f"You are TestBoost, an assistant for {session_type.replace('_', ' ')} on Java projects."
    )
    if mode == Mode.ANALYSIS_ONLY:
        system += " Report findings only; do not propose code changes."
    lines = [f"{step.instruction}", f"Project: {project_path}"]
    if config:
        options = ", ".join(f"{key}={value}" for key, value in sorted(config.items()))
        lines.append(f"Options: {options}")
    for index, output in enumerate(previous_outputs, start=1):
        lines.append(f"Result of step {index}: {output[:2000]}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]
