"""What users do with the knowledge: catalog, topics, cases, collections, handouts, accounts, audit."""
