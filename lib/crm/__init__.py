"""CRMs Steward logs sent email on: the local sandbox CRM or Airtable."""
