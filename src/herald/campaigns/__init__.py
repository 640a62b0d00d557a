"""Campaigns: a template version sent to a segment's frozen audience, planned in chunks, with a simulation."""
