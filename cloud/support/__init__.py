"""The support desk's classifier of consumers' queries, and the labelled data it learns from. Pure
computation, like `cloud.billing`; the desk itself (threads, statuses, SLAs, drafts from the
consumer's records) is `cloud.services.support`."""
