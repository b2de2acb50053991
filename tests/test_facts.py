import pytest

from memp_core.facts import extract_facts


@pytest.mark.parametrize(
    ("sentence", "task_type", "obj", "receptacle"),
    [
        ("heat some egg and put it in garbagecan", "heat", "egg", "garbagecan"),
        ("put a clean cloth in drawer", "clean", "cloth", "drawer"),
        ("cool some lettuce and put it in countertop", "cool", "lettuce", "countertop"),
        ("Your task is to: put some spraybottle on toilet.", "put", "spraybottle", "toilet"),
        ("find two soapbottle and put them in cabinet.", "puttwo", "soapbottle", "cabinet"),
        ("put a hot apple in fridge", "heat", "apple", "fridge"),
        ("find some apple and put it in sidetable", "put", "apple", "sidetable"),
    ],
)
def test_alfworld_task_sentences_give_type_object_and_receptacle(
    sentence: str, task_type: str, obj: str, receptacle: str
) -> None:
    facts = extract_facts(sentence)
    assert (facts.task_type, facts.object, facts.receptacle) == (task_type, obj, receptacle)


def test_examine_tasks_name_the_lamp_as_tool() -> None:
    facts = extract_facts("look at bowl under the desklamp")
    assert (facts.task_type, facts.object, facts.tool) == ("examine", "bowl", "desklamp")


def test_unknown_sentences_give_empty_facts() -> None:
    assert extract_facts("which river is longer, the Ebro or the Tagus?").as_dict() == {}
