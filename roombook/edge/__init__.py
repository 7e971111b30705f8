"""The edge router: one reverse proxy in front of the regional fronts (`roombook edge`).

It sends each request to the region that holds its user's data (by the access token's region
claim, the refresh token's prefix, the registration's region, the email directory for a login),
sends global reads (rooms, search, availability) to the nearest healthy region, and answers for
a region that is down itself (503) while the other keeps serving.
"""
