"""mlfootprint.exporter"""
