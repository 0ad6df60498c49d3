"""Embed collections, index them with FAISS and search them from any aligned modality."""
