"""Extract flow: police."""

from flows._extract import make_extract_flow

extract_police = make_extract_flow("police")

if __name__ == "__main__":
    extract_police()
