"""landing -> bronze: batch manifests, file sniffing, format readers and the ingest job."""
