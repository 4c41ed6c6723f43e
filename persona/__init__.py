"""Characters: the card format, the library of shipped and imported cards, the importer."""

from persona.card import Card, Example, LoreEntry, Persona
from persona.library import PersonaError, PersonaLibrary

__all__ = ["Card", "Example", "LoreEntry", "Persona", "PersonaError", "PersonaLibrary"]
