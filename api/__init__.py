"""The HTTP gateway: PostHog's batch-export API (and its capture endpoints) over aiohttp."""
