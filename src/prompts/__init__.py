"""Prompt templates, class vocabularies and text classifiers."""

from src.prompts.templates import TEMPLATE_SETS, get_templates
from src.prompts.vocabulary import ClassVocabulary, load_vocabulary

__all__ = ["TEMPLATE_SETS", "get_templates", "ClassVocabulary", "load_vocabulary"]
